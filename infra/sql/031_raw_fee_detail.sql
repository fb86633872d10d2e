-- Smart audit inputs (DOMAIN §2 fee_detail, §3 audit_rules). Same shape as the other raw tables:
-- every delivered version of every row, typed, with lineage. Column lists: yibao/contract.py
-- (FEE_DETAIL, AUDIT_RULES_COLUMNS).
-- patient_age_days: completed days of age on the charge date, derived by the loader from the ID
-- number, which (like the birth date itself) is never stored.

create table if not exists raw.fee_detail (
    load_id          bigint      not null,  -- raw.load_ledger (no FK: a per-row trigger slows COPY)
    business_date    date        not null,
    source_file      text        not null,
    source_row       integer     not null,
    loaded_at        timestamptz not null default now(),
    fee_line_id              text,
    hospital_code            text,
    visit_id                 text,
    patient_key        text,
    patient_sex        text,
    patient_birth_year smallint,
    patient_age_days   integer,
    item_type                text,
    item_code                text,
    item_name                text,
    dept_code                text,
    doctor_code              text,
    charged_at               timestamp,
    quantity                 numeric(18,4),
    unit_price               numeric(18,4),
    amount                   numeric(18,2),
    exam_result              text,
    extra            jsonb
);
create index if not exists fee_detail_load_brin on raw.fee_detail using brin (load_id);
create index if not exists fee_detail_natural_key_idx
    on raw.fee_detail (hospital_code, fee_line_id, business_date, load_id, source_row);

-- The rule library, one snapshot per load like the other reference files. Two files land here:
-- the packaged national default (ledger file_kind 'reference:audit_rules_national') and the
-- bureau's own optional reference/audit_rules.csv ('reference:audit_rules'), whose rows add to
-- the national ones and replace a national row of the same rule_id.
create table if not exists raw.ref_audit_rules (
    load_id     bigint      not null references raw.load_ledger (load_id),
    source_row  integer     not null,
    loaded_at   timestamptz not null default now(),
    rule_id                  text,
    rule_type                text,
    item_prefix              text,
    item_name                text,
    severity                 text,
    allowed_sex              text,
    min_age_days             integer,
    max_age_days             integer,
    min_hospital_level       text,
    max_quantity             numeric(18,4),
    days                     integer,
    main_item_prefix         text,
    diagnosis_prefixes       text,
    exam_class               text,
    threshold                numeric(9,4),
    effective_from           date,
    effective_to             date,
    source                   text,
    extra       jsonb
);
create index if not exists ref_audit_rules_load_idx on raw.ref_audit_rules (load_id);
