# Sharing policy: may this subscription receive this signal, and which fields of it?
#
# Input (built by the enforcer, no personal data):
#   {"signal": {"type", "source", "attributes"},
#    "subscriptions": [{"id", "subscriber", "purpose", "legal_basis"}],
#    "now": "YYYY-MM-DD"}
# Data: data.signalhub.agreements, the covenant agreements keyed by
#   "<signal_type>/<subscriber>/<purpose>" (policies/data/agreements.json).
#
# A subscription is allowed only when an agreement exists for its signal type, subscriber and
# purpose, its claimed legal basis is the agreement's, the agreement is in force, every condition
# holds and, where required, the subject consented. Anything else is a deny with reasons.
package signalhub.sharing

import rego.v1

# One decision per subscription id in the input. A subscription that gets no entry (malformed
# input) is treated as a policy failure by the enforcer, which denies and parks the signal.
default decisions := {}

decisions := {sub.id: _decide(sub, input.signal, input.now, data.signalhub.agreements) |
	some sub in input.subscriptions
}

# The same decision for a single subscription, for callers that ask per subscription
# (the form in DESIGN.md: input.subscription instead of input.subscriptions).
default decision := {
	"allow": false,
	"fields": [],
	"pseudonymise": [],
	"reasons": ["incomplete policy input: signal, subscription or now is missing"],
	"domain": "",
	"legal_basis": "",
}

decision := _decide(input.subscription, input.signal, input.now, data.signalhub.agreements)

# BSNs may be used only by parties the law names; no agreement may disclose one in clear.
_never_clear := {"subject_bsn", "occupant_bsn"}

_agreement_key(signal_type, sub) := concat("/", [signal_type, sub.subscriber, sub.purpose])

# Two exclusive definitions rather than `else`: an agreement whose decision is undefined (input
# without attributes) must stay undefined, so the caller fails closed, not read "no agreement".
_decide(sub, signal, now, agreements) := _decide_under(sub, signal, now, key, agreements[key]) if {
	key := _agreement_key(signal.type, sub)
	agreements[key]
}

_decide(sub, signal, _, agreements) := _no_agreement(sub, signal) if {
	not agreements[_agreement_key(signal.type, sub)]
}

_no_agreement(sub, signal) := {
	"allow": false,
	"fields": [],
	"pseudonymise": [],
	"reasons": [sprintf(
		"no agreement for %s to %s for purpose %s",
		[signal.type, sub.subscriber, sub.purpose],
	)],
	"domain": sub.subscriber,
	"legal_basis": object.get(sub, "legal_basis", ""),
}

_decide_under(sub, signal, now, key, agreement) := _verdict(
	sub, key, agreement,
	_problems(sub, signal, now, agreement),
)

_verdict(sub, key, agreement, problems) := _allow(sub, key, agreement) if {
	count(problems) == 0
} else := {
	"allow": false,
	"fields": [],
	"pseudonymise": [],
	"reasons": sort(problems),
	"domain": _domain(sub, agreement),
	"legal_basis": agreement.legal_basis,
}

_allow(sub, key, agreement) := {
	"allow": true,
	"fields": sort(agreement.fields),
	"pseudonymise": sort(agreement.pseudonymise),
	"reasons": [sprintf("permitted by agreement %s under %s", [key, agreement.legal_basis])],
	"domain": _domain(sub, agreement),
	"legal_basis": agreement.legal_basis,
	"generalise": object.get(agreement, "generalise", {}),
}

_domain(sub, agreement) := object.get(agreement, "domain", sub.subscriber)

# Every reason to deny; empty means allow.
_problems(sub, signal, now, agreement) := union({
	_basis_problems(sub, agreement),
	_validity_problems(now, agreement),
	_condition_problems(object.get(agreement, "conditions", {}), signal.attributes),
	_source_problems(object.get(agreement, "conditions", {}), signal),
	_consent_problems(signal.attributes, agreement),
	_clear_bsn_problems(agreement),
	_generalise_problems(agreement),
})

_basis_problems(sub, agreement) := {msg |
	not _same_basis(sub, agreement)
	msg := sprintf(
		"claimed legal basis %s does not match the agreement's %s",
		[object.get(sub, "legal_basis", "(none)"), agreement.legal_basis],
	)
}

_same_basis(sub, agreement) if sub.legal_basis == agreement.legal_basis

# Dates are "YYYY-MM-DD" strings, so string order is date order.
_validity_problems(now, agreement) := {msg |
	now < agreement.valid_from
	msg := sprintf("agreement not yet in force: valid from %s", [agreement.valid_from])
} | {msg |
	now > object.get(agreement, "valid_until", "9999-12-31")
	msg := sprintf("agreement expired: valid until %s", [agreement.valid_until])
}

_condition_problems(conditions, attributes) := union({
	_severity_problems(conditions, attributes),
	_at_least_problems(conditions, attributes),
	_allowed_problems(conditions, attributes),
	_minor_problems(conditions, attributes),
})

_severity_problems(conditions, attributes) := {msg |
	minimum := conditions.min_severity
	not _at_least(attributes, "severity", minimum)
	msg := sprintf("severity below the agreed minimum of %d", [minimum])
}

_at_least_problems(conditions, attributes) := {msg |
	some name, minimum in object.get(conditions, "at_least", {})
	not _at_least(attributes, name, minimum)
	msg := sprintf("%s below the agreed minimum of %d", [name, minimum])
}

# A missing attribute fails the condition: the policy never assumes what it cannot see.
_at_least(attributes, name, minimum) if attributes[name] >= minimum

_allowed_problems(conditions, attributes) := {msg |
	some name, values in object.get(conditions, "allowed", {})
	not _one_of(attributes, name, values)
	msg := sprintf("%s is not one of the agreed values %v", [name, values])
}

_one_of(attributes, name, values) if attributes[name] in values

# exclude_minors denies a signal known to concern a minor; a signal type without a birth date
# cannot show one. only_minors needs a signal known to concern a minor: unknown age is a deny.
_minor_problems(conditions, attributes) := {msg |
	conditions.exclude_minors == true
	_is_minor(attributes)
	msg := "the signal concerns a minor and the agreement excludes minors"
} | {msg |
	conditions.only_minors == true
	not _is_minor(attributes)
	msg := "the signal is not known to concern a minor and the agreement covers minors only"
}

_is_minor(attributes) if attributes.minor == true

# sources limits an agreement to signals published by the agencies it names (the hub's own
# casework alerts come from "signalhub").
_source_problems(conditions, signal) := {msg |
	sources := conditions.sources
	not signal.source in sources
	msg := sprintf("the signal's source %s is not one of the agreed sources %v", [signal.source, sources])
}

_consent_problems(attributes, agreement) := {msg |
	agreement.requires_consent == true
	not _consented(attributes)
	msg := "the agreement requires the subject's consent and none is recorded"
}

_consented(attributes) if attributes.consent == true

_clear_bsn_problems(agreement) := {msg |
	some field in agreement.fields
	field in _never_clear
	msg := sprintf("the agreement lists %s in clear; a BSN is only ever pseudonymised", [field])
}

# An agreement may deliver a field generalised instead of in clear: {field: method}. The methods
# are the ones signalhub.generalise implements; a BSN is never generalised (only pseudonymised),
# and a generalised field is not also listed in clear or pseudonymised.
# The envelope's timestamps are cut to the day unless the agreement lists them in clear
# ("envelope.observed_at" in fields) or generalises them to the hour.
_generalisations := {"age_band", "postcode_area", "neighbourhood"}

_envelope_times := {"envelope.observed_at", "envelope.registered_at"}

_time_generalisations := {"day", "hour"}

_generalise_problems(agreement) := {msg |
	some field, method in object.get(agreement, "generalise", {})
	not _known_generalisation(field, method)
	msg := sprintf("the agreement generalises %s with unknown method %s", [field, method])
} | {msg |
	some field, _ in object.get(agreement, "generalise", {})
	field in _never_clear
	msg := sprintf("the agreement generalises %s; a BSN is only ever pseudonymised", [field])
} | {msg |
	some field, _ in object.get(agreement, "generalise", {})
	_listed(agreement, field)
	msg := sprintf("the agreement lists %s both generalised and clear or pseudonymised", [field])
}

_listed(agreement, field) if field in agreement.fields

_known_generalisation(field, method) if {
	not field in _envelope_times
	method in _generalisations
}

_known_generalisation(field, method) if {
	field in _envelope_times
	method in _time_generalisations
}

_listed(agreement, field) if field in agreement.pseudonymise
