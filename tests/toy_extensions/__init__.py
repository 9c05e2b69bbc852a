"""Toy extensions for tests/test_extension.py: defined outside the package, added only through the
registries' public functions (`register_criterion`, `register_unit_type`)."""
