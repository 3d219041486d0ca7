"""absl programs, one per method, plus reproduce."""
