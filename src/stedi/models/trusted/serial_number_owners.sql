-- Who owns each Step Trainer serial number. The fulfillment website once gave one serial number to
-- several customers: such a number (carried by more than one distinct customer, latest record each,
-- consenting or not) is ambiguous and has no owner. An owner is named only when they are the
-- number's one customer and they consent, so no non-consenting customer's email reaches this zone.
WITH carriers AS (
    SELECT serialNumber, count(DISTINCT customer_email) AS customers, min(customer_email) AS only_customer
    FROM stg_customer_records
    WHERE is_latest AND serialNumber IS NOT NULL
    GROUP BY serialNumber
)
SELECT
    carriers.serialNumber,
    carriers.customers,
    CASE WHEN carriers.customers = 1 THEN customer_trusted.email END AS email
FROM carriers
LEFT JOIN customer_trusted ON customer_trusted.email = carriers.only_customer
