package signalhub.bundling_test

import rego.v1

import data.signalhub.bundling

_c(agency, type, day) := {"agency": agency, "type": type, "day": day}

_person(contributions) := {"bundle": {"kind": "person", "one_person": true, "contributions": contributions}}

test_allow_fire_three_signals_two_agencies_within_90_days if {
	d := bundling.decision with input as _person([
		_c("politie", "nuisance_report", 0),
		_c("woningcorporatie", "nuisance_report", 30),
		_c("schuldhulpverlening", "debt_signal", 89),
	])
	d.fire
	d.rule == "multi_agency_90_days"
}

test_deny_fire_three_signals_spread_over_more_than_90_days if {
	d := bundling.decision with input as _person([
		_c("politie", "nuisance_report", 0),
		_c("woningcorporatie", "nuisance_report", 50),
		_c("schuldhulpverlening", "debt_signal", 120),
	])
	not d.fire
	d.reasons == ["no bundling rule fires"]
}

test_allow_fire_in_a_later_window if {
	d := bundling.decision with input as _person([
		_c("politie", "nuisance_report", 0),
		_c("woningcorporatie", "nuisance_report", 200),
		_c("schuldhulpverlening", "debt_signal", 220),
		_c("politie", "intimidation_report", 250),
	])
	d.fire
}

test_deny_fire_three_signals_from_one_agency if {
	d := bundling.decision with input as _person([
		_c("politie", "nuisance_report", 0),
		_c("politie", "drug_signal", 1),
		_c("politie", "intimidation_report", 2),
	])
	not d.fire
}

test_deny_fire_two_signals if {
	d := bundling.decision with input as _person([
		_c("politie", "nuisance_report", 0),
		_c("woningcorporatie", "nuisance_report", 1),
	])
	not d.fire
}

test_allow_fire_radicalisation_with_any_other_signal if {
	d := bundling.decision with input as _person([
		_c("gemeente", "radicalisation_concern", 0),
		_c("gemeente", "nuisance_report", 300),
	])
	d.fire
	d.rule == "radicalisation_plus_other"
	d.reasons == [concat("", [
		"rule radicalisation_plus_other: a radicalisation concern together with any other ",
		"signal about the same person within 365 days",
	])]
}

test_deny_fire_radicalisation_alone if {
	d := bundling.decision with input as _person([_c("gemeente", "radicalisation_concern", 0)])
	not d.fire
}

test_allow_fire_lowest_priority_wins if {
	d := bundling.decision with input as _person([
		_c("gemeente", "radicalisation_concern", 0),
		_c("politie", "nuisance_report", 1),
		_c("woningcorporatie", "nuisance_report", 2),
	])
	d.rule == "radicalisation_plus_other"
}

test_allow_fire_address_of_several_people if {
	d := bundling.decision with input as {"bundle": {
		"kind": "address", "one_person": false,
		"contributions": [
			_c("politie", "drug_signal", 0),
			_c("woningcorporatie", "nuisance_report", 3),
			_c("gemeente", "nuisance_report", 9),
		],
	}}
	d.fire
	d.rule == "multi_agency_90_days"
}

test_deny_fire_address_covered_by_its_one_person if {
	d := bundling.decision with input as {"bundle": {
		"kind": "address", "one_person": true,
		"contributions": [
			_c("politie", "drug_signal", 0),
			_c("woningcorporatie", "nuisance_report", 3),
			_c("gemeente", "nuisance_report", 9),
		],
	}}
	not d.fire
}

test_deny_fire_radicalisation_rule_not_for_addresses if {
	d := bundling.decision with input as {"bundle": {
		"kind": "address", "one_person": false,
		"contributions": [_c("gemeente", "radicalisation_concern", 0), _c("gemeente", "nuisance_report", 1)],
	}}
	not d.fire
}

test_deny_fire_without_bundle if {
	d := bundling.decision with input as {}
	not d.fire
	d.reasons == ["incomplete bundling input: bundle is missing"]
}

test_allow_hit_no_hit_for_casework_partner if {
	a := bundling.hit_no_hit with input as {"asker": "politie"}
	a.allow
	a.reasons == ["politie is a partner of the casework domain"]
}

test_allow_hit_no_hit_for_zvh if {
	a := bundling.hit_no_hit with input as {"asker": "zvh"}
	a.allow
}

test_deny_hit_no_hit_without_casework_agreement if {
	a := bundling.hit_no_hit with input as {"asker": "woningcorporatie"}
	not a.allow
	a.reasons == ["woningcorporatie has no casework agreement"]
}

test_deny_hit_no_hit_for_youth_care_with_other_purpose if {
	a := bundling.hit_no_hit with input as {"asker": "jeugdzorg"}
	not a.allow
}

test_deny_hit_no_hit_without_asker if {
	a := bundling.hit_no_hit with input as {}
	not a.allow
}

# --- youth care, education and police (youth_care_education_police_90_days) ---

test_allow_fire_youth_care_education_and_police_within_90_days if {
	d := bundling.decision with input as _person([
		_c("jeugdzorg", "youth_protection_concern", 0),
		_c("onderwijs", "school_absence", 30),
		_c("politie", "drug_signal", 80),
	])
	d.fire
	d.rule == "youth_care_education_police_90_days"
}

test_deny_fire_youth_care_education_and_police_spread_over_more_than_90_days if {
	d := bundling.decision with input as _person([
		_c("jeugdzorg", "youth_protection_concern", 0),
		_c("onderwijs", "school_absence", 40),
		_c("politie", "drug_signal", 131),
	])
	not d.fire
}

test_deny_fire_youth_rule_without_the_police if {
	d := bundling.decision with input as _person([
		_c("jeugdzorg", "youth_protection_concern", 0),
		_c("onderwijs", "school_absence", 10),
		_c("gemeente", "nuisance_report", 20),
	])
	d.rule == "multi_agency_90_days"
}

test_deny_fire_youth_rule_without_school_absence if {
	d := bundling.decision with input as _person([
		_c("jeugdzorg", "youth_protection_concern", 0),
		_c("onderwijs", "youth_protection_concern", 10),
		_c("politie", "drug_signal", 20),
	])
	d.rule == "multi_agency_90_days"
}

test_deny_fire_youth_rule_not_for_addresses if {
	d := bundling.decision with input as {"bundle": {
		"kind": "address", "one_person": false,
		"contributions": [
			_c("jeugdzorg", "youth_protection_concern", 0),
			_c("onderwijs", "school_absence", 10),
			_c("politie", "drug_signal", 20),
		],
	}}
	d.rule == "multi_agency_90_days"
}
