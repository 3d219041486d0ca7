"""Runtime: strategies, the training loop, summaries, export, results, seeds, atomic files."""
