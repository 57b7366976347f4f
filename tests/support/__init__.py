"""What the tests and benchmarks share: copies of the project, servers on 127.0.0.1."""
