"""Agent cognition: salience, supersession, outcomes, reflection queries, contexts, tiers, prefetch."""
