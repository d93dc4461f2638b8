-- Step Trainer readings whose serial number belongs to exactly one customer who is in
-- customers_curated, within the consent scope, exact duplicates collapsed, tagged with the owner's
-- email so they join to accelerometer_trusted by customer. Readings of ambiguous numbers go nowhere.
SELECT DISTINCT
    reading.sensorReadingTime,
    reading.serialNumber,
    reading.distanceFromObject,
    customer.email
FROM step_trainer_landing AS reading
JOIN serial_number_owners AS owners ON owners.serialNumber = reading.serialNumber AND owners.customers = 1
JOIN customers_curated AS customer ON customer.email = owners.email
CROSS JOIN run_settings
WHERE run_settings.consent_scope = 'all' OR reading.sensorReadingTime >= customer.shareWithResearchAsOfDate
