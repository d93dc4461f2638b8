-- Consenting customers who have at least one trusted accelerometer reading.
SELECT customer.*
FROM customer_trusted AS customer
WHERE EXISTS (SELECT 1 FROM accelerometer_trusted AS reading WHERE reading.user = customer.email)
