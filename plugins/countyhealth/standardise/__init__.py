"""Standardisation: one home for turning what members record into comparable values — person identity
fields (:mod:`.person`) and lab/exam item codes and units (:mod:`.lab`)."""
