-- Every customer record of the landing zone, cleaned once for every model that reads customers.
-- `customer_email` is the email trimmed and lower-cased: customers are matched by it everywhere.
-- `is_latest` marks each customer's latest record by lastUpdateDate (ties: the later ingest, file
-- and line), the record that decides their consent and serial number.
SELECT
    *,
    lower(trim(email)) AS customer_email,
    row_number() OVER (
        PARTITION BY lower(trim(email))
        ORDER BY lastUpdateDate DESC NULLS LAST, _ingested_at DESC, _source_file DESC, _source_line DESC
    ) = 1 AS is_latest
FROM customer_landing
