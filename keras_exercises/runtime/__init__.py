"""What every stage process needs: atomic writes, errors and clean stops, paths, seeding,
timing records."""
