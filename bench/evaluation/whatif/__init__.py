"""`orchestrator whatif`: what other routing policies would have achieved on the decisions logged.

decisions.py folds the log into logged decisions (the router's candidates, the assignment that
happened with its probability, the outcome); policies.py says how likely each policy was to pick
each candidate; estimators.py turns both into IPS, self-normalised IPS and doubly robust values
with bootstrap intervals; report.py puts them together; store.py keeps them in `whatif_runs`;
command.py reads the log from Kafka; validate.py checks the intervals on a log where the truth is
known.
"""
