-- One row per customer: their latest record, kept only when it carries research consent. A later
-- record without consent therefore revokes it, and a later record with consent grants it.
SELECT
    customer_email AS email,
    customerName,
    phone,
    birthDay,
    serialNumber,
    registrationDate,
    lastUpdateDate,
    shareWithResearchAsOfDate,
    shareWithPublicAsOfDate,
    shareWithFriendsAsOfDate,
    _source_file,
    _source_line
FROM stg_customer_records
WHERE is_latest AND shareWithResearchAsOfDate IS NOT NULL
