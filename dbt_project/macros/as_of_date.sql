{#- The as-of date of the build (var as_of_date, 'YYYY-MM-DD') as a SQL date literal.
    Parsing needs no date; anything that executes SQL does, so a missing or malformed value
    fails loudly instead of silently building through "today". -#}
{% macro as_of_date() -%}
    {%- set value = var('as_of_date', none) -%}
    {%- if value is none or (value | string | trim) == '' -%}
        {%- if execute -%}
            {{ exceptions.raise_compiler_error(
                "var 'as_of_date' is required: the latest loaded business date, e.g. --vars '{as_of_date: 2025-12-31}'") }}
        {%- endif -%}
        {{- return("date '1900-01-01'") -}}
    {%- endif -%}
    {%- set text = value | string | trim -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', text) -%}
        {{ exceptions.raise_compiler_error("var 'as_of_date' must be YYYY-MM-DD, got '" ~ text ~ "'") }}
    {%- endif -%}
    {{- return("date '" ~ text ~ "'") -}}
{%- endmacro %}

{#- The as-of date as 'YYYY-MM-DD' text, for Jinja comparisons. -#}
{% macro as_of_date_text() -%}
    {{- return(as_of_date()[6:16]) -}}
{%- endmacro %}
