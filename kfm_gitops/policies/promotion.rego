# Promotion decision (gates): everything processing denies, plus approvals and embargoes.
package kfm.promotion

import rego.v1

import data.kfm.processing

default allow := false

deny contains code if some code in processing.deny

# Timestamps arrive normalised to UTC (YYYY-MM-DDTHH:MM:SSZ), so they compare as strings.
deny contains "EMBARGOED" if {
	input.embargo_until
	input.embargo_until > input.now
}

deny contains "APPROVALS_MISSING" if {
	some rule in input.required_approvals
	count({a.principal | some a in input.approvals; a.role == rule.role}) < rule.min
}

allow if count(deny) == 0
