"""Evaluation: the numbers a user may trust about a finished run. Likelihoods, sample and representation quality
(evaluate, with sample-quality measures in quality and the digit classifier that scores samples in classifier), and
disentanglement: the five metrics on any ground truth (disentanglement) and a run against dSprites' factors
(factors)."""
