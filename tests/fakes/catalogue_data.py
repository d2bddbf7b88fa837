"""The catalogue tests and benchmarks build on: the one the sandbox sells (product code)."""

from services.esimgo.standin.catalogue_data import COUNTRIES, make_catalogue, make_networks

__all__ = ["COUNTRIES", "make_catalogue", "make_networks"]
