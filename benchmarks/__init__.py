"""`make bench`: how dlcore's code compares with the reference it replaces, as ratios measured in one run.

Each module here defines ``cases() -> list[Case]``; a case times *ours* and *the reference* with
``torch.utils.benchmark`` (warm-up, blocked medians) in the same process, one after the other, so the ratio
is meaningful on a noisy shared machine even when the absolute times are not.
"""
