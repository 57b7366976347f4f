"""Getting the datasets: downloads, offline mirrors, and the slices each exercise uses."""
