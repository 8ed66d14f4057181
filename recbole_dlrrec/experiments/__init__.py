"""Many runs: leaderboards (models x seeds), the paper's experiments, Ray Tune searches,
significance tests and plots."""
