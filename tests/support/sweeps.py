"""What the sweep's tests share: the grid they sweep, and how their clusters start."""

# two points: exercise 1's learning rate, everything else shared
RATES = "exercises.ex1.optimizer.learning_rate=0.001,0.002"
# no dashboard: on two cores its polling is taken from the stages
NO_DASHBOARD = {"include_dashboard": False}
