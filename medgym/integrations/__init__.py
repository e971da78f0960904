"""Adapters to training frameworks (verl, TRL); each imports its framework lazily."""
