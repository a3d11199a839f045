"""Hostile input, faults and signals: each test is a case that once crashed, corrupted or lied."""
