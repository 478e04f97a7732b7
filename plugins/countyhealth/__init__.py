"""countyhealth: nightly data integration for a county medical community (县域医共体).

The package reads like the flow: ``connectors/ → landing → validation → standardise → identity/ →
warehouse → results``. Importing it is cheap on purpose: DAG files import it at parse time.
"""

__version__ = "0.1.0"
