"""Operate: the FinOps loop after the plan is bought.

Budgets with forecast-based alerts (:mod:`operate.budgets`, :mod:`operate.alerts`, :mod:`operate.aws_budgets`),
showback/chargeback under a plan (:mod:`operate.chargeback`), unit economics (:mod:`operate.units`),
guardrails (:mod:`operate.policy`) and the cost review report (:mod:`operate.report`).

Operate sits downstream of ``forecasting`` and ``optimizer`` (it imports both; neither imports it) and
never imports streamlit. Money is USD, usage GPU-hours (GPUs in use averaged over an hour).
"""
