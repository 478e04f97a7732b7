"""Connectors: one small module per kind of source (``sql``, ``rest``, ``file``, ``hl7``).

A kind is a :class:`~countyhealth.connectors.base.Connector` subclass registered under the entry-point
group ``countyhealth.connectors`` (setup.cfg), so a plug-in package adds a kind without touching this one::

    [options.entry_points]
    countyhealth.connectors =
        fhir = my_package.fhir:FhirConnector

The built-in kinds are registered the same way; the table below is only a fallback for a checkout that
runs without being pip-installed (e.g. Airflow reading plugins/ directly).
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "countyhealth.connectors"
_BUILT_IN = {
    "sql": "countyhealth.connectors.sql:SqlConnector",
    "rest": "countyhealth.connectors.rest:RestConnector",
    "file": "countyhealth.connectors.file:FileConnector",
    "hl7": "countyhealth.connectors.hl7:Hl7Connector",
}


@cache
def _registry() -> dict[str, str]:
    found = dict(_BUILT_IN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep.value
    return found


def known_kinds() -> list[str]:
    return sorted(_registry())


def connector_class(kind: str):
    """The Connector class for a kind; KeyError when no installed package provides it."""
    target = _registry()[kind]
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)
