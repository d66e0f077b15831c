"""The conversion report and the exports: which leads count (filters.py), the SQL (queries.py), figures kept in
Redis (cache.py), the .xlsx and CSV files, and the staff pages that show them."""
