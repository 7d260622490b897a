# Processing decision (WORK): may this data be processed toward publication under this label?
# Default deny: allow only when no deny rule fires. Codes are kfm's vocabulary; kfm.yaml may extend the labels.
package kfm.processing

import rego.v1

default allow := false

labels := {label | some label in input.vocabulary.labels}

# Licences accepted by SPDX id; a licence named by URL is accepted as written in the contract.
known_licenses := {
	"CC0-1.0", "CC-BY-4.0", "CC-BY-SA-4.0", "CC-BY-3.0", "ODbL-1.0", "ODC-By-1.0", "PDDL-1.0",
	"OGL-UK-3.0", "OGL-Canada-2.0", "etalab-2.0", "MIT", "Apache-2.0",
}

# Labels that may only carry generalised geometry.
needs_generalisation := {"public_generalized", "restricted_sensitive_location"}

deny contains "UNKNOWN_LABEL" if not labels[input.label]

deny contains "SENSITIVITY_UNRESOLVED" if input.label == "quarantine"

deny contains "OBLIGATION_MISSING" if {
	needs_generalisation[input.label]
	not "generalize_geometry" in input.obligations
}

deny contains "UNKNOWN_LICENSE" if not input.license

deny contains "UNKNOWN_LICENSE" if {
	input.license.spdx
	not known_licenses[input.license.spdx]
}

deny contains "RIGHTS_UNKNOWN" if not input.terms.digest

allow if count(deny) == 0
