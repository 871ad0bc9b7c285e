# Tests of the sharing policy against the shipped agreements (policies/data/agreements.json).
#
# Every agreement has a test_allow_* with attributes that satisfy it and a test_deny_* per
# condition it carries (or, when it has none, past its validity). The general tests below cover
# the decision shape, the reasons and the invariants every shipped agreement must keep.
# Run: `signalhub policy test` or `pytest tests/test_rego.py`.
package signalhub.sharing_test

import rego.v1

import data.signalhub.sharing

_today := "2026-06-01"

_subscription(key, legal_basis) := {
	"id": "sub-under-test",
	"subscriber": split(key, "/")[1],
	"purpose": split(key, "/")[2],
	"legal_basis": legal_basis,
}

_decide(key, legal_basis, attributes, now) := d if {
	d := sharing.decision with input as {
		"signal": {"type": split(key, "/")[0], "source": "gemeente", "attributes": attributes},
		"subscription": _subscription(key, legal_basis),
		"now": now,
	}
}

_basis(key) := data.signalhub.agreements[key].legal_basis

_allows(key, attributes) if {
	d := _decide(key, _basis(key), attributes, _today)
	d.allow == true
	d.fields == sort(data.signalhub.agreements[key].fields)
	d.pseudonymise == sort(data.signalhub.agreements[key].pseudonymise)
	d.legal_basis == _basis(key)
}

_denies(key, attributes, reason) if _denies_on(key, attributes, _today, reason)

_denies_on(key, attributes, now, reason) if {
	d := _decide(key, _basis(key), attributes, now)
	d.allow == false
	d.fields == []
	d.pseudonymise == []
	reason in d.reasons
}

_drug_basis := "Opiumwet art. 13b jo. Gemeentewet art. 174a"

_gemeente_damocles := {
	"id": "gemeente-damocles",
	"subscriber": "gemeente",
	"purpose": "damocles_enforcement",
	"legal_basis": _drug_basis,
}

_dealing := {"type": "drug_signal", "source": "politie", "attributes": {"activity": "dealing", "severity": 3}}

# --- decision shape over several subscriptions ---

test_allow_decisions_keyed_by_subscription_id if {
	subs := [
		_gemeente_damocles,
		{"id": "wc", "subscriber": "woningcorporatie", "purpose": "nope", "legal_basis": "x"},
	]
	ds := sharing.decisions with input as {"signal": _dealing, "subscriptions": subs, "now": _today}
	object.keys(ds) == {"gemeente-damocles", "wc"}
	ds["gemeente-damocles"].allow == true
	ds["gemeente-damocles"].domain == "gemeente"
	ds["gemeente-damocles"].reasons == [
		"permitted by agreement drug_signal/gemeente/damocles_enforcement under Opiumwet art. 13b jo. Gemeentewet art. 174a",
	]
	ds.wc.allow == false
}

test_allow_casework_partners_share_one_pseudonym_domain if {
	every subscriber in ["zvh", "gemeente", "politie", "om", "reclassering"] {
		data.signalhub.agreements[concat("/", ["casework_referral", subscriber, "casework"])].domain == "zvh-casework"
	}
}

test_allow_domain_defaults_to_subscriber if {
	d := _decide("housing_closure/politie/public_order_enforcement", "Politiewet 2012 art. 3", {"measure": "closure_art13b_opiumwet"}, _today)
	d.allow == true
	d.domain == "politie"
}

test_allow_on_first_and_last_day_of_validity if {
	key := "nuisance_report/gemeente/public_order"
	attrs := {"category": "noise", "severity": 1}
	_decide(key, _basis(key), attrs, data.signalhub.agreements[key].valid_from).allow == true
	_decide(key, _basis(key), attrs, data.signalhub.agreements[key].valid_until).allow == true
}

# --- generic denials ---

test_deny_no_agreement_for_type_subscriber_purpose if {
	ds := sharing.decisions with input as {
		"signal": _dealing,
		"subscriptions": [{"id": "wc", "subscriber": "woningcorporatie", "purpose": "prevent_eviction", "legal_basis": "x"}],
		"now": _today,
	}
	ds.wc == {
		"allow": false,
		"fields": [],
		"pseudonymise": [],
		"reasons": ["no agreement for drug_signal to woningcorporatie for purpose prevent_eviction"],
		"domain": "woningcorporatie",
		"legal_basis": "x",
	}
}

test_deny_claimed_legal_basis_differs if {
	d := _decide("drug_signal/gemeente/damocles_enforcement", "Gemeentewet art. 172", {"activity": "dealing", "severity": 3}, _today)
	d.allow == false
	d.reasons == ["claimed legal basis Gemeentewet art. 172 does not match the agreement's Opiumwet art. 13b jo. Gemeentewet art. 174a"]
}

test_deny_missing_legal_basis if {
	d := sharing.decision with input as {
		"signal": _dealing,
		"subscription": {"id": "g", "subscriber": "gemeente", "purpose": "damocles_enforcement"},
		"now": _today,
	}
	d.allow == false
}

test_deny_before_agreement_in_force if {
	_denies_on("nuisance_report/gemeente/public_order", {"category": "noise", "severity": 3}, "2023-12-31", "agreement not yet in force: valid from 2024-01-01")
}

test_deny_missing_condition_attribute if {
	_denies("nuisance_report/politie/public_order_enforcement", {"category": "noise"}, "severity below the agreed minimum of 3")
	_denies("housing_closure/politie/public_order_enforcement", {}, `measure is not one of the agreed values ["closure_art13b_opiumwet", "closure_art174a_gemeentewet"]`)
}

test_deny_consent_false if {
	_denies("debt_signal/zvh/casework", {"months_in_arrears": 6, "consent": false}, "the agreement requires the subject's consent and none is recorded")
}

test_deny_only_minors_with_unknown_age if {
	_denies("drug_signal/jeugdzorg/youth_protection", {"activity": "dealing", "severity": 3}, "the signal is not known to concern a minor and the agreement covers minors only")
}

test_deny_lists_every_reason_sorted if {
	d := _decide("drug_signal/om/prosecution", "x", {"activity": "storage", "severity": 1}, "2030-01-01")
	d.reasons == [
		"activity is not one of the agreed values [\"dealing\", \"production_site\", \"recruitment_of_minors\"]",
		"agreement expired: valid until 2027-12-31",
		"claimed legal basis x does not match the agreement's Wetboek van Strafvordering art. 148",
		"severity below the agreed minimum of 4",
	]
}

test_deny_agreement_that_lists_a_bsn_in_clear if {
	bad := {"drug_signal/gemeente/damocles_enforcement": {
		"legal_basis": _drug_basis,
		"valid_from": "2024-01-01",
		"valid_until": "2027-12-31",
		"fields": ["activity", "subject_bsn"],
		"pseudonymise": [],
		"conditions": {},
		"requires_consent": false,
	}}
	d := sharing.decision with input as {"signal": _dealing, "subscription": _gemeente_damocles, "now": _today}
		with data.signalhub.agreements as bad
	d.allow == false
	d.reasons == ["the agreement lists subject_bsn in clear; a BSN is only ever pseudonymised"]
}

test_deny_incomplete_input_by_default if {
	d := sharing.decision with input as {"subscription": _gemeente_damocles}
	d.allow == false
	d.domain == ""
	count(sharing.decisions) == 0 with input as {"subscriptions": [_gemeente_damocles]}
}

# --- invariants of the shipped agreements ---

test_deny_bsn_in_clear_in_no_shipped_agreement if {
	every agreement in data.signalhub.agreements {
		every field in agreement.fields {
			not field in {"subject_bsn", "occupant_bsn"}
		}
	}
}

test_deny_minors_to_woningcorporatie_in_every_agreement if {
	keys := _keys_of("woningcorporatie")
	count(keys) > 0
	every key in keys {
		data.signalhub.agreements[key].conditions.exclude_minors == true
	}
}

test_allow_jeugdzorg_only_about_minors_in_every_agreement if {
	keys := _keys_of("jeugdzorg")
	count(keys) > 0
	every key in keys {
		data.signalhub.agreements[key].conditions.only_minors == true
	}
}

test_deny_free_text_to_all_but_a_few_agreements if {
	with_text := {key | some key, agreement in data.signalhub.agreements; "description" in agreement.fields}
	count(with_text) <= 3
}

test_deny_every_listed_field_either_clear_or_pseudonymised if {
	every agreement in data.signalhub.agreements {
		count({f | some f in agreement.fields} & {f | some f in agreement.pseudonymise}) == 0
	}
}

_keys_of(subscriber) := {key | some key, _ in data.signalhub.agreements; split(key, "/")[1] == subscriber}

# --- per shipped agreement: one allow, and one deny per condition it carries (or, without
# conditions, past its validity); tests/test_rego.py checks that no agreement lacks them ---

test_allow_nuisance_report_woningcorporatie_prevent_housing_nuisance if {
	_allows("nuisance_report/woningcorporatie/prevent_housing_nuisance", {"category": "noise", "severity": 4, "reporter_type": "resident"})
}

test_deny_nuisance_report_woningcorporatie_prevent_housing_nuisance_below_min_severity if {
	_denies("nuisance_report/woningcorporatie/prevent_housing_nuisance", {"category": "noise", "severity": 1, "reporter_type": "resident"}, "severity below the agreed minimum of 2")
}

test_deny_nuisance_report_woningcorporatie_prevent_housing_nuisance_minor if {
	_denies("nuisance_report/woningcorporatie/prevent_housing_nuisance", {"category": "noise", "severity": 4, "reporter_type": "resident", "age_band": "12-17", "minor": true}, "the signal concerns a minor and the agreement excludes minors")
}

test_allow_nuisance_report_gemeente_public_order if {
	_allows("nuisance_report/gemeente/public_order", {"category": "noise", "severity": 4, "reporter_type": "resident"})
}

test_deny_nuisance_report_gemeente_public_order_after_expiry if {
	_denies_on("nuisance_report/gemeente/public_order", {"category": "noise", "severity": 4, "reporter_type": "resident"}, "2028-01-01", "agreement expired: valid until 2027-12-31")
}

test_allow_nuisance_report_politie_public_order_enforcement if {
	_allows("nuisance_report/politie/public_order_enforcement", {"category": "noise", "severity": 4, "reporter_type": "resident"})
}

test_deny_nuisance_report_politie_public_order_enforcement_below_min_severity if {
	_denies("nuisance_report/politie/public_order_enforcement", {"category": "noise", "severity": 2, "reporter_type": "resident"}, "severity below the agreed minimum of 3")
}

test_allow_drug_signal_woningcorporatie_prevent_housing_nuisance if {
	_allows("drug_signal/woningcorporatie/prevent_housing_nuisance", {"activity": "production_site", "severity": 4, "age_band": "23-64", "minor": false})
}

test_deny_drug_signal_woningcorporatie_prevent_housing_nuisance_activity_dealing if {
	_denies("drug_signal/woningcorporatie/prevent_housing_nuisance", {"activity": "dealing", "severity": 4, "age_band": "23-64", "minor": false}, "activity is not one of the agreed values [\"production_site\", \"storage\", \"drug_nuisance\"]")
}

test_deny_drug_signal_woningcorporatie_prevent_housing_nuisance_minor if {
	_denies("drug_signal/woningcorporatie/prevent_housing_nuisance", {"activity": "production_site", "severity": 4, "age_band": "12-17", "minor": true}, "the signal concerns a minor and the agreement excludes minors")
}

test_allow_drug_signal_gemeente_damocles_enforcement if {
	_allows("drug_signal/gemeente/damocles_enforcement", {"activity": "production_site", "severity": 4, "age_band": "23-64", "minor": false})
}

test_deny_drug_signal_gemeente_damocles_enforcement_below_min_severity if {
	_denies("drug_signal/gemeente/damocles_enforcement", {"activity": "production_site", "severity": 1, "age_band": "23-64", "minor": false}, "severity below the agreed minimum of 2")
}

test_deny_drug_signal_gemeente_damocles_enforcement_activity_drug_nuisance if {
	_denies("drug_signal/gemeente/damocles_enforcement", {"activity": "drug_nuisance", "severity": 4, "age_band": "23-64", "minor": false}, "activity is not one of the agreed values [\"dealing\", \"production_site\", \"storage\"]")
}

test_allow_drug_signal_politie_criminal_investigation if {
	_allows("drug_signal/politie/criminal_investigation", {"activity": "production_site", "severity": 4, "age_band": "23-64", "minor": false})
}

test_deny_drug_signal_politie_criminal_investigation_after_expiry if {
	_denies_on("drug_signal/politie/criminal_investigation", {"activity": "production_site", "severity": 4, "age_band": "23-64", "minor": false}, "2028-01-01", "agreement expired: valid until 2027-12-31")
}

test_allow_drug_signal_om_prosecution if {
	_allows("drug_signal/om/prosecution", {"activity": "production_site", "severity": 4, "age_band": "23-64", "minor": false})
}

test_deny_drug_signal_om_prosecution_below_min_severity if {
	_denies("drug_signal/om/prosecution", {"activity": "production_site", "severity": 3, "age_band": "23-64", "minor": false}, "severity below the agreed minimum of 4")
}

test_deny_drug_signal_om_prosecution_activity_storage if {
	_denies("drug_signal/om/prosecution", {"activity": "storage", "severity": 4, "age_band": "23-64", "minor": false}, "activity is not one of the agreed values [\"dealing\", \"production_site\", \"recruitment_of_minors\"]")
}

test_allow_drug_signal_jeugdzorg_youth_protection if {
	_allows("drug_signal/jeugdzorg/youth_protection", {"activity": "production_site", "severity": 4, "age_band": "12-17", "minor": true})
}

test_deny_drug_signal_jeugdzorg_youth_protection_adult if {
	_denies("drug_signal/jeugdzorg/youth_protection", {"activity": "production_site", "severity": 4, "age_band": "18-22", "minor": false}, "the signal is not known to concern a minor and the agreement covers minors only")
}

test_allow_intimidation_report_gemeente_undermining_resilience if {
	_allows("intimidation_report/gemeente/undermining_resilience", {"victim_role": "official", "severity": 4, "organised_crime_indication": true})
}

test_deny_intimidation_report_gemeente_undermining_resilience_victim_role_resident if {
	_denies("intimidation_report/gemeente/undermining_resilience", {"victim_role": "resident", "severity": 4, "organised_crime_indication": true}, "victim_role is not one of the agreed values [\"official\", \"entrepreneur\"]")
}

test_allow_intimidation_report_politie_public_order_enforcement if {
	_allows("intimidation_report/politie/public_order_enforcement", {"victim_role": "official", "severity": 4, "organised_crime_indication": true})
}

test_deny_intimidation_report_politie_public_order_enforcement_after_expiry if {
	_denies_on("intimidation_report/politie/public_order_enforcement", {"victim_role": "official", "severity": 4, "organised_crime_indication": true}, "2028-01-01", "agreement expired: valid until 2027-12-31")
}

test_allow_intimidation_report_om_prosecution if {
	_allows("intimidation_report/om/prosecution", {"victim_role": "official", "severity": 4, "organised_crime_indication": true})
}

test_deny_intimidation_report_om_prosecution_below_min_severity if {
	_denies("intimidation_report/om/prosecution", {"victim_role": "official", "severity": 2, "organised_crime_indication": true}, "severity below the agreed minimum of 3")
}

test_deny_intimidation_report_om_prosecution_organised_crime_indication_false if {
	_denies("intimidation_report/om/prosecution", {"victim_role": "official", "severity": 4, "organised_crime_indication": false}, "organised_crime_indication is not one of the agreed values [true]")
}

test_allow_debt_signal_schuldhulpverlening_early_debt_signalling if {
	_allows("debt_signal/schuldhulpverlening/early_debt_signalling", {"debt_kind": "rent", "months_in_arrears": 4, "age_band": "23-64", "minor": false})
}

test_deny_debt_signal_schuldhulpverlening_early_debt_signalling_months_in_arrears_below_minimum if {
	_denies("debt_signal/schuldhulpverlening/early_debt_signalling", {"debt_kind": "rent", "months_in_arrears": 0, "age_band": "23-64", "minor": false}, "months_in_arrears below the agreed minimum of 1")
}

test_deny_debt_signal_schuldhulpverlening_early_debt_signalling_minor if {
	_denies("debt_signal/schuldhulpverlening/early_debt_signalling", {"debt_kind": "rent", "months_in_arrears": 4, "age_band": "12-17", "minor": true}, "the signal concerns a minor and the agreement excludes minors")
}

test_allow_debt_signal_zvh_casework if {
	_allows("debt_signal/zvh/casework", {"debt_kind": "rent", "months_in_arrears": 4, "age_band": "23-64", "minor": false, "consent": true})
}

test_deny_debt_signal_zvh_casework_months_in_arrears_below_minimum if {
	_denies("debt_signal/zvh/casework", {"debt_kind": "rent", "months_in_arrears": 2, "age_band": "23-64", "minor": false, "consent": true}, "months_in_arrears below the agreed minimum of 3")
}

test_deny_debt_signal_zvh_casework_without_consent if {
	_denies("debt_signal/zvh/casework", {"debt_kind": "rent", "months_in_arrears": 4, "age_band": "23-64", "minor": false}, "the agreement requires the subject's consent and none is recorded")
}

test_allow_housing_closure_woningcorporatie_tenancy_enforcement if {
	_allows("housing_closure/woningcorporatie/tenancy_enforcement", {"measure": "closure_art13b_opiumwet"})
}

test_deny_housing_closure_woningcorporatie_tenancy_enforcement_measure_eviction if {
	_denies("housing_closure/woningcorporatie/tenancy_enforcement", {"measure": "eviction"}, "measure is not one of the agreed values [\"closure_art13b_opiumwet\", \"closure_art174a_gemeentewet\"]")
}

test_deny_housing_closure_woningcorporatie_tenancy_enforcement_minor if {
	_denies("housing_closure/woningcorporatie/tenancy_enforcement", {"measure": "closure_art13b_opiumwet", "age_band": "12-17", "minor": true}, "the signal concerns a minor and the agreement excludes minors")
}

test_allow_housing_closure_politie_public_order_enforcement if {
	_allows("housing_closure/politie/public_order_enforcement", {"measure": "closure_art13b_opiumwet"})
}

test_deny_housing_closure_politie_public_order_enforcement_measure_eviction if {
	_denies("housing_closure/politie/public_order_enforcement", {"measure": "eviction"}, "measure is not one of the agreed values [\"closure_art13b_opiumwet\", \"closure_art174a_gemeentewet\"]")
}

test_allow_housing_closure_schuldhulpverlening_early_debt_signalling if {
	_allows("housing_closure/schuldhulpverlening/early_debt_signalling", {"measure": "eviction"})
}

test_deny_housing_closure_schuldhulpverlening_early_debt_signalling_measure_closure_art13b_opiumwet if {
	_denies("housing_closure/schuldhulpverlening/early_debt_signalling", {"measure": "closure_art13b_opiumwet"}, "measure is not one of the agreed values [\"eviction\"]")
}

test_allow_housing_closure_zvh_casework if {
	_allows("housing_closure/zvh/casework", {"measure": "closure_art13b_opiumwet"})
}

test_deny_housing_closure_zvh_casework_after_expiry if {
	_denies_on("housing_closure/zvh/casework", {"measure": "closure_art13b_opiumwet"}, "2028-01-01", "agreement expired: valid until 2027-12-31")
}

test_allow_radicalisation_concern_gemeente_public_order if {
	_allows("radicalisation_concern/gemeente/public_order", {"concern_level": "high", "age_band": "18-22", "minor": false})
}

test_deny_radicalisation_concern_gemeente_public_order_concern_level_low if {
	_denies("radicalisation_concern/gemeente/public_order", {"concern_level": "low", "age_band": "18-22", "minor": false}, "concern_level is not one of the agreed values [\"medium\", \"high\"]")
}

test_allow_radicalisation_concern_politie_public_order_enforcement if {
	_allows("radicalisation_concern/politie/public_order_enforcement", {"concern_level": "high", "age_band": "18-22", "minor": false})
}

test_deny_radicalisation_concern_politie_public_order_enforcement_concern_level_low if {
	_denies("radicalisation_concern/politie/public_order_enforcement", {"concern_level": "low", "age_band": "18-22", "minor": false}, "concern_level is not one of the agreed values [\"high\"]")
}

test_allow_radicalisation_concern_jeugdzorg_youth_protection if {
	_allows("radicalisation_concern/jeugdzorg/youth_protection", {"concern_level": "high", "age_band": "12-17", "minor": true})
}

test_deny_radicalisation_concern_jeugdzorg_youth_protection_adult if {
	_denies("radicalisation_concern/jeugdzorg/youth_protection", {"concern_level": "high", "age_band": "18-22", "minor": false}, "the signal is not known to concern a minor and the agreement covers minors only")
}

test_allow_radicalisation_concern_zvh_casework if {
	_allows("radicalisation_concern/zvh/casework", {"concern_level": "high", "age_band": "18-22", "minor": false})
}

test_deny_radicalisation_concern_zvh_casework_concern_level_low if {
	_denies("radicalisation_concern/zvh/casework", {"concern_level": "low", "age_band": "18-22", "minor": false}, "concern_level is not one of the agreed values [\"medium\", \"high\"]")
}

test_allow_casework_referral_zvh_casework if {
	_allows("casework_referral/zvh/casework", {"referral_reason": "safety_risk", "urgency": "urgent", "age_band": "23-64", "minor": false})
}

test_deny_casework_referral_zvh_casework_after_expiry if {
	_denies_on("casework_referral/zvh/casework", {"referral_reason": "safety_risk", "urgency": "urgent", "age_band": "23-64", "minor": false}, "2028-01-01", "agreement expired: valid until 2027-12-31")
}

test_allow_casework_referral_gemeente_casework if {
	_allows("casework_referral/gemeente/casework", {"referral_reason": "safety_risk", "urgency": "urgent", "age_band": "23-64", "minor": false})
}

test_deny_casework_referral_gemeente_casework_after_expiry if {
	_denies_on("casework_referral/gemeente/casework", {"referral_reason": "safety_risk", "urgency": "urgent", "age_band": "23-64", "minor": false}, "2028-01-01", "agreement expired: valid until 2027-12-31")
}

test_allow_casework_referral_politie_casework if {
	_allows("casework_referral/politie/casework", {"referral_reason": "safety_risk", "urgency": "urgent", "age_band": "23-64", "minor": false})
}

test_deny_casework_referral_politie_casework_referral_reason_multi_problem if {
	_denies("casework_referral/politie/casework", {"referral_reason": "multi_problem", "urgency": "urgent", "age_band": "23-64", "minor": false}, "referral_reason is not one of the agreed values [\"safety_risk\", \"domestic_violence\", \"radicalisation\"]")
}

test_allow_casework_referral_om_casework if {
	_allows("casework_referral/om/casework", {"referral_reason": "safety_risk", "urgency": "urgent", "age_band": "23-64", "minor": false})
}

test_deny_casework_referral_om_casework_referral_reason_multi_problem if {
	_denies("casework_referral/om/casework", {"referral_reason": "multi_problem", "urgency": "urgent", "age_band": "23-64", "minor": false}, "referral_reason is not one of the agreed values [\"safety_risk\", \"domestic_violence\", \"after_detention\"]")
}

test_allow_casework_referral_reclassering_casework if {
	_allows("casework_referral/reclassering/casework", {"referral_reason": "safety_risk", "urgency": "urgent", "age_band": "23-64", "minor": false})
}

test_deny_casework_referral_reclassering_casework_referral_reason_multi_problem if {
	_denies("casework_referral/reclassering/casework", {"referral_reason": "multi_problem", "urgency": "urgent", "age_band": "23-64", "minor": false}, "referral_reason is not one of the agreed values [\"after_detention\", \"safety_risk\", \"domestic_violence\"]")
}

test_deny_casework_referral_reclassering_casework_minor if {
	_denies("casework_referral/reclassering/casework", {"referral_reason": "safety_risk", "urgency": "urgent", "age_band": "12-17", "minor": true}, "the signal concerns a minor and the agreement excludes minors")
}

test_allow_casework_referral_schuldhulpverlening_casework if {
	_allows("casework_referral/schuldhulpverlening/casework", {"referral_reason": "multi_problem", "urgency": "urgent", "age_band": "23-64", "minor": false, "consent": true})
}

test_deny_casework_referral_schuldhulpverlening_casework_referral_reason_safety_risk if {
	_denies("casework_referral/schuldhulpverlening/casework", {"referral_reason": "safety_risk", "urgency": "urgent", "age_band": "23-64", "minor": false, "consent": true}, "referral_reason is not one of the agreed values [\"multi_problem\"]")
}

test_deny_casework_referral_schuldhulpverlening_casework_minor if {
	_denies("casework_referral/schuldhulpverlening/casework", {"referral_reason": "multi_problem", "urgency": "urgent", "age_band": "12-17", "minor": true, "consent": true}, "the signal concerns a minor and the agreement excludes minors")
}

test_deny_casework_referral_schuldhulpverlening_casework_without_consent if {
	_denies("casework_referral/schuldhulpverlening/casework", {"referral_reason": "multi_problem", "urgency": "urgent", "age_band": "23-64", "minor": false}, "the agreement requires the subject's consent and none is recorded")
}

test_allow_casework_referral_jeugdzorg_youth_protection if {
	_allows("casework_referral/jeugdzorg/youth_protection", {"referral_reason": "safety_risk", "urgency": "urgent", "age_band": "12-17", "minor": true})
}

test_deny_casework_referral_jeugdzorg_youth_protection_adult if {
	_denies("casework_referral/jeugdzorg/youth_protection", {"referral_reason": "safety_risk", "urgency": "urgent", "age_band": "18-22", "minor": false}, "the signal is not known to concern a minor and the agreement covers minors only")
}

# --- generalisation: fields delivered coarsened instead of in clear ---

_generalising(extra) := object.union(data.signalhub.agreements["nuisance_report/gemeente/public_order"], extra)

_decide_with(agreement) := d if {
	d := _decide("nuisance_report/gemeente/public_order", "Gemeentewet art. 172", {"category": "noise", "severity": 4, "reporter_type": "resident"}, _today) with data.signalhub.agreements["nuisance_report/gemeente/public_order"] as agreement
}

test_allow_decision_carries_the_agreements_generalisation if {
	d := _decide("nuisance_report/woningcorporatie/prevent_housing_nuisance", _basis("nuisance_report/woningcorporatie/prevent_housing_nuisance"), {"category": "noise", "severity": 4, "reporter_type": "resident"}, _today)
	d.allow == true
	d.generalise == {"address": "postcode_area"}
	not "address" in d.fields
	not "postcode" in d.fields
}

test_allow_age_band_instead_of_birth_date_for_youth_care if {
	d := _decide("drug_signal/jeugdzorg/youth_protection", _basis("drug_signal/jeugdzorg/youth_protection"), {"activity": "dealing", "severity": 3, "age_band": "12-17", "minor": true}, _today)
	d.allow == true
	d.generalise == {"subject_birth_date": "age_band"}
}

test_allow_without_generalisation_an_empty_object if {
	d := _decide("drug_signal/gemeente/damocles_enforcement", _drug_basis, {"activity": "dealing", "severity": 3}, _today)
	d.generalise == {}
}

test_deny_unknown_generalisation_method if {
	d := _decide_with(_generalising({"generalise": {"address": "street"}}))
	d.allow == false
	"the agreement generalises address with unknown method street" in d.reasons
}

test_allow_envelope_timestamps_generalised_to_the_hour if {
	d := _decide_with(_generalising({"generalise": {"envelope.observed_at": "hour", "envelope.registered_at": "day"}}))
	d.allow == true
	d.generalise["envelope.observed_at"] == "hour"
}

test_deny_payload_method_on_an_envelope_timestamp if {
	d := _decide_with(_generalising({"generalise": {"envelope.observed_at": "age_band"}}))
	d.allow == false
	"the agreement generalises envelope.observed_at with unknown method age_band" in d.reasons
}

test_deny_time_method_on_a_payload_field if {
	d := _decide_with(_generalising({"generalise": {"address": "hour"}}))
	d.allow == false
	"the agreement generalises address with unknown method hour" in d.reasons
}

test_deny_generalised_bsn if {
	d := _decide_with(_generalising({"generalise": {"subject_bsn": "postcode_area"}}))
	d.allow == false
	"the agreement generalises subject_bsn; a BSN is only ever pseudonymised" in d.reasons
}

test_deny_field_both_generalised_and_clear if {
	d := _decide_with(_generalising({"generalise": {"category": "neighbourhood"}}))
	d.allow == false
	"the agreement lists category both generalised and clear or pseudonymised" in d.reasons
}

test_deny_shipped_generalisations_all_valid if {
	every agreement in data.signalhub.agreements {
		count(sharing._generalise_problems(agreement)) == 0
	}
}

# The hub's own casework_alert (signalhub.bundling) goes to the casework consultation only.
test_allow_casework_alert_zvh_casework if {
	_allows("casework_alert/zvh/casework", {"subject_kind": "person", "rule": "multi_agency_90_days"})
	d := _decide("casework_alert/zvh/casework", _basis("casework_alert/zvh/casework"), {"subject_kind": "person"}, _today)
	d.domain == "zvh-casework"
	"subject_ref" in d.fields
}

test_deny_casework_alert_zvh_casework_after_validity if {
	_denies_on("casework_alert/zvh/casework", {"subject_kind": "person"}, "2028-01-01", "agreement expired: valid until 2027-12-31")
}

test_deny_casework_alert_to_other_partners if {
	every subscriber in ["gemeente", "politie", "om", "reclassering", "schuldhulpverlening", "jeugdzorg"] {
		not data.signalhub.agreements[concat("/", ["casework_alert", subscriber, "casework"])]
	}
}

# An agreement may be limited to signals from some publishing agencies (conditions.sources).
_nuisance_from_politie_only := object.union(
	data.signalhub.agreements["nuisance_report/gemeente/public_order"],
	{"conditions": {"sources": ["politie"]}},
)

_nuisance_from(source) := d if {
	d := sharing.decision with input as {
		"signal": {"type": "nuisance_report", "source": source, "attributes": {"category": "noise", "severity": 4}},
		"subscription": _subscription("nuisance_report/gemeente/public_order", "Gemeentewet art. 172"),
		"now": _today,
	}
		with data.signalhub.agreements["nuisance_report/gemeente/public_order"] as _nuisance_from_politie_only
}

test_allow_signal_from_an_agreed_source if {
	d := _nuisance_from("politie")
	d.allow == true
}

test_deny_signal_from_another_source if {
	d := _nuisance_from("gemeente")
	d.allow == false
	`the signal's source gemeente is not one of the agreed sources ["politie"]` in d.reasons
}

# --- youth care (jeugdzorg) and education (onderwijs) as sources ---

_youth(kind, severity, minor) := {
	"concern_kind": kind,
	"severity": severity,
	"urgency": "urgent",
	"age_band": _band(minor),
	"minor": minor,
}

_absence(kind, hours, weeks, minor) := {
	"absence_kind": kind,
	"hours_absent": hours,
	"weeks_absent": weeks,
	"age_band": _band(minor),
	"minor": minor,
}

_band(true) := "12-17"

_band(false) := "18-22"

test_allow_youth_protection_concern_zvh_casework if {
	_allows("youth_protection_concern/zvh/casework", _youth("youth_protection", 2, true))
	d := _decide("youth_protection_concern/zvh/casework", _basis("youth_protection_concern/zvh/casework"), _youth("youth_protection", 2, true), _today)
	d.domain == "zvh-casework"
	d.generalise == {"subject_birth_date": "age_band"}
}

test_deny_youth_protection_concern_zvh_casework_below_min_severity if {
	_denies("youth_protection_concern/zvh/casework", _youth("youth_protection", 1, true), "severity below the agreed minimum of 2")
}

test_deny_youth_protection_concern_zvh_casework_under_the_wgs_basis if {
	d := _decide("youth_protection_concern/zvh/casework", "Wgs art. 3 / convenant ZVH Maastricht art. 5", _youth("youth_protection", 4, true), _today)
	d.allow == false
	"claimed legal basis Wgs art. 3 / convenant ZVH Maastricht art. 5 does not match the agreement's Jeugdwet art. 7.4.0 / convenant ZVH Maastricht art. 5" in d.reasons
}

test_allow_youth_protection_concern_gemeente_youth_care_duty if {
	_allows("youth_protection_concern/gemeente/youth_care_duty", _youth("domestic_violence", 3, true))
}

test_deny_youth_protection_concern_gemeente_youth_care_duty_below_min_severity if {
	_denies("youth_protection_concern/gemeente/youth_care_duty", _youth("domestic_violence", 2, true), "severity below the agreed minimum of 3")
}

test_allow_youth_protection_concern_politie_youth_exploitation if {
	_allows("youth_protection_concern/politie/youth_exploitation", _youth("criminal_exploitation", 4, true))
	_allows("youth_protection_concern/politie/youth_exploitation", _youth("drug_dealing", 5, false))
}

test_deny_youth_protection_concern_politie_youth_exploitation_below_min_severity if {
	_denies("youth_protection_concern/politie/youth_exploitation", _youth("criminal_exploitation", 3, true), "severity below the agreed minimum of 4")
}

test_deny_youth_protection_concern_politie_youth_exploitation_concern_at_home if {
	_denies("youth_protection_concern/politie/youth_exploitation", _youth("youth_protection", 5, true), "concern_kind is not one of the agreed values [\"drug_dealing\", \"criminal_exploitation\"]")
}

test_deny_youth_protection_concern_to_partners_without_an_agreement if {
	every key, _ in data.signalhub.agreements {
		_youth_receiver(key)
	}
}

_youth_receiver(key) if not startswith(key, "youth_protection_concern/")

_youth_receiver(key) if {
	startswith(key, "youth_protection_concern/")
	split(key, "/")[1] in {"zvh", "gemeente", "politie"}
}

test_allow_school_absence_gemeente_compulsory_education if {
	_allows("school_absence/gemeente/compulsory_education", _absence("luxury_absence", 0, 1, true))
}

test_deny_school_absence_gemeente_compulsory_education_after_validity if {
	_denies_on("school_absence/gemeente/compulsory_education", _absence("unauthorised_absence", 20, 4, true), "2028-01-01", "agreement expired: valid until 2027-12-31")
}

test_allow_school_absence_zvh_casework if {
	_allows("school_absence/zvh/casework", _absence("early_school_leaving", 0, 4, false))
	d := _decide("school_absence/zvh/casework", _basis("school_absence/zvh/casework"), _absence("unauthorised_absence", 30, 6, true), _today)
	d.domain == "zvh-casework"
}

test_deny_school_absence_zvh_casework_luxury_absence if {
	_denies("school_absence/zvh/casework", _absence("luxury_absence", 40, 8, true), "absence_kind is not one of the agreed values [\"unauthorised_absence\", \"absolute_absence\", \"early_school_leaving\"]")
}

test_deny_school_absence_zvh_casework_below_weeks_absent if {
	_denies("school_absence/zvh/casework", _absence("unauthorised_absence", 40, 3, true), "weeks_absent below the agreed minimum of 4")
}

test_allow_school_absence_jeugdzorg_youth_protection if {
	_allows("school_absence/jeugdzorg/youth_protection", _absence("unauthorised_absence", 16, 1, true))
}

test_deny_school_absence_jeugdzorg_youth_protection_adult if {
	_denies("school_absence/jeugdzorg/youth_protection", _absence("unauthorised_absence", 20, 4, false), "the signal is not known to concern a minor and the agreement covers minors only")
}

test_deny_school_absence_jeugdzorg_youth_protection_early_school_leaving if {
	_denies("school_absence/jeugdzorg/youth_protection", _absence("early_school_leaving", 20, 4, true), "absence_kind is not one of the agreed values [\"unauthorised_absence\", \"absolute_absence\"]")
}

test_deny_school_absence_jeugdzorg_youth_protection_below_hours_absent if {
	_denies("school_absence/jeugdzorg/youth_protection", _absence("unauthorised_absence", 15, 4, true), "hours_absent below the agreed minimum of 16")
}

# --- residents' reports (meldpunt): places and patterns, no person, no reporter ---

_spot := {"category": "drug_dealing_spot", "frequency": "daily"}

test_allow_neighbourhood_report_gemeente_public_order if {
	_allows("neighbourhood_report/gemeente/public_order", _spot)
	_allows("neighbourhood_report/gemeente/public_order", {"category": "nuisance", "frequency": "weekly"})
}

test_deny_neighbourhood_report_gemeente_public_order_after_expiry if {
	_denies_on("neighbourhood_report/gemeente/public_order", _spot, "2028-01-01", "agreement expired: valid until 2027-12-31")
}

test_allow_neighbourhood_report_politie_public_order_enforcement if {
	_allows("neighbourhood_report/politie/public_order_enforcement", _spot)
}

test_deny_neighbourhood_report_politie_public_order_enforcement_category_nuisance if {
	_denies("neighbourhood_report/politie/public_order_enforcement", {"category": "nuisance", "frequency": "daily"}, "category is not one of the agreed values [\"drug_dealing_spot\", \"intimidation\", \"cannabis_cultivation\"]")
}

test_deny_neighbourhood_report_free_text_in_no_agreement if {
	keys := {key | some key, _ in data.signalhub.agreements; startswith(key, "neighbourhood_report/")}
	count(keys) == 2
	every key in keys {
		not "description" in data.signalhub.agreements[key].fields
	}
}
