"""The operator's side: dashboard figures and chart, supplier balance, order lookup and
actions, support tickets, broadcasts and the daily report. Admin-only; no aiogram types."""
