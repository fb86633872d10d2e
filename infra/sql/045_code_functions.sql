-- Check-character and format functions for the national codes (docs/codes.md), in SQL so that
-- data-quality checks run inside PostgreSQL on the night's rows (expectations/, yibao.quality).
-- All are strict (null in, null out) and side-effect free; tests/test_quality.py cross-checks
-- them against python-stdnum on thousands of generated valid and corrupted values.

-- 统一社会信用代码 (GB 32100-2015): 18 characters of 0-9 and A-Z without I, O, S, V, Z; positions
-- 1-2 registration authority and organisation type, 3-8 the region code (digits), 9-17 the body,
-- 18 the check character: values 0-30, weights 3^(i-1) mod 31, check = (31 - sum mod 31) mod 31.
create or replace function audit.uscc_is_well_formed(code text)
returns boolean
language sql
immutable strict parallel safe
as $$
    select code ~ '^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$'
$$;
comment on function audit.uscc_is_well_formed(text) is '统一社会信用代码 GB 32100-2015: format only';

create or replace function audit.uscc_is_valid(code text)
returns boolean
language sql
immutable strict parallel safe
as $$
    select audit.uscc_is_well_formed(code)
       and substr('0123456789ABCDEFGHJKLMNPQRTUWXY',
                  (31 - (select sum((strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code, i, 1)) - 1)
                                    * (array[1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28])[i])
                         from generate_series(1, 17) as i)::integer % 31) % 31 + 1, 1)
           = substr(code, 18, 1)
$$;
comment on function audit.uscc_is_valid(text) is
    '统一社会信用代码 GB 32100-2015: format and check character';

-- 产品标识 UDI-DI as GTIN-14: 14 digits, GS1 mod-10 check digit (weights 3, 1, 3, ... from the
-- rightmost payload digit; check = (10 - sum mod 10) mod 10).
create or replace function audit.udi_is_well_formed(code text)
returns boolean
language sql
immutable strict parallel safe
as $$
    select code ~ '^[0-9]{14}$'
$$;
comment on function audit.udi_is_well_formed(text) is 'UDI-DI (GTIN-14): 14 digits, format only';

create or replace function audit.udi_is_valid(code text)
returns boolean
language sql
immutable strict parallel safe
as $$
    select audit.udi_is_well_formed(code)
       and (10 - (select sum(substr(code, i, 1)::integer * case when i % 2 = 1 then 3 else 1 end)
                  from generate_series(1, 13) as i) % 10) % 10
           = substr(code, 14, 1)::integer
$$;
comment on function audit.udi_is_valid(text) is 'UDI-DI (GTIN-14): 14 digits and GS1 mod-10 check digit';

-- 居民身份证号 (GB 11643, ISO 7064 MOD 11-2): 17 digits and a check character 0-9 or X;
-- weights 2^(17-i) mod 11, check = (12 - sum mod 11) mod 11, 10 written X.
create or replace function audit.ric_check_char_ok(code text)
returns boolean
language sql
immutable strict parallel safe
as $$
    select code ~ '^[0-9]{17}[0-9X]$'
       and substr('0123456789X',
                  (12 - (select sum(substr(code, i, 1)::integer
                                    * (array[7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])[i])
                         from generate_series(1, 17) as i)::integer % 11) % 11 + 1, 1)
           = substr(code, 18, 1)
$$;

-- The full ID-number rule: check character, and characters 7-14 a real date that is not after
-- `as_of` (stable, not immutable: the default is today). IDs are validated and pseudonymised by
-- the loader and never stored; this function serves ad-hoc checks and the tests.
create or replace function audit.ric_is_valid(code text, as_of date default current_date)
returns boolean
language plpgsql
stable strict parallel safe
as $$
declare
    birth date;
begin
    if not audit.ric_check_char_ok(code) then
        return false;
    end if;
    begin
        birth := to_date(substr(code, 7, 8), 'YYYYMMDD');
    exception when others then
        return false;
    end;
    -- to_date is lenient (20250230 becomes March 2nd): the date must print back the same
    return to_char(birth, 'YYYYMMDD') = substr(code, 7, 8) and birth <= as_of;
end
$$;
comment on function audit.ric_is_valid(text, date) is
    '居民身份证号 GB 11643: MOD 11-2 check character and a real birth date not after as_of';

-- 医保医用耗材代码: C + 19 digits (20 characters), optionally + 7-digit spec/model serial (27).
create or replace function audit.consumable_code_is_valid(code text)
returns boolean
language sql
immutable strict parallel safe
as $$
    select code ~ '^C[0-9]{19}([0-9]{7})?$'
$$;
comment on function audit.consumable_code_is_valid(text) is '医保医用耗材代码: 20 or 27 characters';

-- 医保版 ICD-10 diagnosis code: letter, 2 digits, dot, 3 of digit/x, optional x + 3 digits,
-- optional dagger-asterisk pair: + asterisk code (letter, 2 digits, optional .digit) and *, as in
-- A01.000x005+J17.0* (the same pattern as yibao.codes.validate_icd10; the whole national list of
-- tests/data/reference/icd10_chs_diagnoses.tsv passes it).
create or replace function audit.icd10_is_valid(code text)
returns boolean
language sql
immutable strict parallel safe
as $$
    select code ~ '^[A-Z][0-9]{2}\.[0-9x]{3}(x[0-9]{3})?(\+[A-Z][0-9]{2}(\.[0-9])?\*)?$'
$$;
comment on function audit.icd10_is_valid(text) is '医保版 ICD-10 诊断编码 pattern';

-- 定点医疗机构代码: H + 6-digit region code + 5-digit sequence, e.g. H52020100022. Whether the region
-- is one of the city's counties and the code is registered are checked against the registry.
create or replace function audit.hospital_code_is_well_formed(code text)
returns boolean
language sql
immutable strict parallel safe
as $$
    select code ~ '^H[0-9]{11}$'
$$;
comment on function audit.hospital_code_is_well_formed(text) is '定点医疗机构代码 format: H + 11 digits';
