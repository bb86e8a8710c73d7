"""`make bench`: how dlcore's code compares with the reference it replaces, as ratios measured in one run.

Each module here defines ``cases(device) -> list[Case]``; a case times *ours* and *the reference* with
``dlcore.measure.compare_times`` (``torch.utils.benchmark``: warm-up, blocked medians) in alternating rounds
in the same process, so the ratio — the median of per-round ratios — is meaningful on a noisy shared machine
even when the absolute times are not. Cases run with torch's thread count, as the chapters train, unless a
case says otherwise (the table's ``thr`` column).
"""
