{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'patient_key']},
        {'columns': ['hospital_code', 'subject_id']},
        {'columns': ['_batch_at']},
    ],
    pre_hook="{{ audit_readmission_delete_touched() }}"
) }}

-- Smart audit R22 分解住院 (readmission, local rules): the effective inpatient settlements
-- (medical category 21) of one patient at one hospital, by admission_date; a settlement admitted
-- <= days after the discharge of the previous one with the same first 3 characters of
-- principal_diagnosis is a finding on the later settlement: flagged_amount = its fund_paid,
-- charge_date = its admission_date. The rule applies when the later admission date lies in its
-- effective dates. Normally suspicious; its subject is a settlement, so it never enters the R6 base.
--
-- Incremental: re-derives the (hospital, patient) pairs of the settlements int_claims_with_deductions
-- re-derived since this table was written (a new, late, corrected or reversed claim), reading
-- only those patients' stays through the (hospital_code, patient_key) index; a pre-hook deletes
-- their stored findings and the findings on the re-derived settlements themselves (a stay
-- corrected to another patient), and the pairs of those settlements' earlier patients
-- (_prior_patient_keys: the former patient's other stays are re-walked without the stay). Every
-- pair when the rule library changed. Nothing when the library has no readmission rule and did not
-- change since (macro audit_readmission_idle: nothing to find, nothing stored).

{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}
{%- set everything = audit_findings_everything(wm, ['stg_audit_rules']) %}
{%- set idle = audit_readmission_idle(everything) %}

with

rules as (

    select *
    from {{ ref('stg_audit_rules') }}
    where rule_type = 'readmission'
      and days is not null

),

{% if not everything and not idle %}
touched_patients as materialized (

    {{ audit_claims_touched_patients(wm) }}

),
{% endif %}

stays as (

    select
        hospital_code,
        settlement_id,
        visit_id,
        patient_key,
        admission_date,
        discharge_date,
        fund_paid_amount,
        left(principal_diagnosis_code, 3) as diagnosis_group,
        lag(discharge_date) over (
            partition by hospital_code, patient_key, left(principal_diagnosis_code, 3)
            order by admission_date, settlement_id
        ) as previous_discharge_date
    from {{ ref('int_claims_with_deductions') }}
    where is_effective_settlement
      and medical_category_code = '21'
      and patient_key is not null
      and admission_date is not null
      and principal_diagnosis_code is not null
      {% if idle %}
      and false
      {% elif not everything %}
      and (hospital_code, patient_key) in (select hospital_code, patient_key from touched_patients)
      {% endif %}

)

select
    rules.rule_id,
    rules.rule_type,
    rules.severity,
    stays.hospital_code,
    'settlement'::text as subject_type,
    stays.settlement_id as subject_id,
    stays.visit_id,
    stays.patient_key,
    stays.admission_date as charge_date,
    null::text as item_code,
    null::text as item_name,
    1::numeric(18, 4) as line_quantity,
    stays.fund_paid_amount as line_amount,
    1::numeric(18, 4) as flagged_quantity,
    stays.fund_paid_amount::numeric(18, 2) as flagged_amount,
    false as is_cross_hospital,
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from stays
inner join rules
    on stays.admission_date >= rules.effective_from
   and stays.admission_date <= rules.effective_to
where stays.previous_discharge_date is not null
  and stays.admission_date - stays.previous_discharge_date <= rules.days
