"""Pictures and report: image grids and matplotlib figures of a model (draw), which figures a run gets, from which
fixed inputs, while training and on demand (run_figures), and the self-contained HTML report with its in-browser latent
explorer (report)."""
