# Bundling policy: when do linked signals about one person or address go to the casework
# consultation (Zorg- en Veiligheidshuis), and who may ask whether a person is known?
#
# Input of `decision` (built by the bundler, no personal data):
#   {"bundle": {"kind": "person" | "address",
#               "one_person": bool,        # address bundle whose signals all name one person
#               "contributions": [{"agency", "type", "day"}]}}   # day: days since the first
# Input of `hit_no_hit`: {"asker": "<agency>"}
# Data: data.signalhub.bundling_rules (policies/data/bundling_rules.json) and
#       data.signalhub.agreements (the covenant agreements, keyed "<type>/<subscriber>/<purpose>").
package signalhub.bundling

import rego.v1

default decision := {
	"fire": false,
	"rule": "",
	"reasons": ["incomplete bundling input: bundle is missing"],
}

decision := _decide(input.bundle, data.signalhub.bundling_rules.rules) if input.bundle

# The firing rule with the lowest priority number; none firing is a structured "no".
_decide(bundle, rules) := {
	"fire": true,
	"rule": name,
	"reasons": [sprintf("rule %s: %s", [name, rules[name].description])],
} if {
	fired := {[rule.priority, rule_name] | some rule_name, rule in rules; _fires(rule, bundle)}
	count(fired) > 0
	name := sort(fired)[0][1]
} else := {
	"fire": false,
	"rule": "",
	"reasons": ["no bundling rule fires"],
}

# Some window of within_days days, ending at one of the bundle's signals, meets the rule.
_fires(rule, bundle) if {
	bundle.kind in rule.kinds
	not _covered_by_person(bundle)
	some last in bundle.contributions
	window := _window(bundle.contributions, last.day, rule.within_days)
	count(window) >= rule.min_signals
	agencies := {c.agency | some c in window}
	count(agencies) >= rule.min_agencies
	types := {c.type | some c in window}
	every required in rule.required_types {
		required in types
	}
	every required in object.get(rule, "required_agencies", []) {
		required in agencies
	}
}

_window(contributions, end, days) := [c |
	some c in contributions
	c.day <= end
	c.day >= end - days
]

# An address bundle whose signals all name the same person is that person's bundle: the
# consultation gets one alert for it, not two.
_covered_by_person(bundle) if {
	bundle.kind == "address"
	bundle.one_person == true
}

# Hit/no-hit ("check op bekendheid"): only partners of the casework domain may ask.
default hit_no_hit := {"allow": false, "reasons": ["incomplete question: asker is missing"]}

hit_no_hit := _ask(input.asker, data.signalhub.agreements, data.signalhub.bundling_rules) if {
	is_string(input.asker)
}

_ask(asker, agreements, rules) := {
	"allow": true,
	"reasons": [sprintf("%s is a partner of the %s domain", [asker, rules.casework_purpose])],
} if {
	_partner(asker, agreements, rules.casework_purpose)
} else := {
	"allow": false,
	"reasons": [sprintf("%s has no %s agreement", [asker, rules.casework_purpose])],
}

_partner(asker, agreements, purpose) if {
	some key, _ in agreements
	parts := split(key, "/")
	parts[1] == asker
	parts[2] == purpose
}
