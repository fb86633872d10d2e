{#- Schemas are the literal names configured per folder (staging, intermediate, seeds, the marts
    schema var), not dbt's default "<target schema>_<custom>": the warehouse layout is fixed. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
