"""`keras-exercises sweep`: a grid of experiments, each stage of each a Ray task, the results
brought home as DVC experiments through DVC's run-cache."""
