"""The demo clinic (`fhir-server demo`, `fhir-server serve --demo`): data and loader.

Plain functions over the stores; nothing here knows about HTTP.
"""

from fhir_server.demo.full import DemoResult, prepare_demo
from fhir_server.demo.loader import DemoSummary, load_demo

__all__ = ["DemoResult", "DemoSummary", "load_demo", "prepare_demo"]
