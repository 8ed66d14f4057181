"""What touches RecBole's run loop: one run (quick_start), the training step (training), the
fast loaders (fast_loader) and the classification metrics (metrics)."""
