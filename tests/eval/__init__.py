"""Tests for migu.eval (a package, so that test module names here cannot clash with other folders')."""
