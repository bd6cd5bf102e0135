"""Plans runs, launches them, collects predictions into summary.csv, renders tables.

Never imports torch or model code: it must work on a login node without either.
"""
