"""Rendering results: terminal, JSON, JUnit."""
