"""The demo clinic (`fhir-server demo`, `fhir-server serve --demo`): data and loader.

Plain functions over the `ResourceStore`; nothing here knows about HTTP.
"""

from fhir_server.demo.loader import DemoSummary, load_demo

__all__ = ["DemoSummary", "load_demo"]
