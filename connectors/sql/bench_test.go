package sql_test

import (
	"strconv"
	"testing"

	sqltarget "github.com/syncline/syncline/connectors/sql"
	"github.com/syncline/syncline/pkg/connector"
)

// BenchmarkPush pushes batches of 500 records of ten fields, the size the connector service
// pulls from the push stream, as new rows (insert) and over existing ones (update).
func BenchmarkPush(b *testing.B) {
	const batchSize = 500
	payload := []byte(`{"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0000",
		"street": "12 St James's Square", "city": "London", "zip": "SW1Y 4JH", "country": "GB",
		"credit_limit": 2500.50, "vip": true, "tags": ["engineering", "mathematics"]}`)
	batch := func(prefix string, version int64) []connector.Write {
		records := make([]connector.Write, batchSize)
		for i := range records {
			records[i] = connector.Write{Key: prefix + strconv.Itoa(i), Op: connector.WriteUpdate, Version: version, Payload: payload}
		}
		return records
	}
	for _, be := range backends() {
		b.Run(be.driver, func(b *testing.B) {
			for _, mode := range []string{"insert", "update"} {
				b.Run(mode, func(b *testing.B) {
					target := open(b, sqltarget.Settings{Driver: be.driver, DSN: be.newDSN(b), Table: "customers", CreateTable: true})
					push(b, target, batch("warm-up-", 1)...) // creates the columns
					pushes := 0
					for b.Loop() {
						pushes++
						prefix, version := "c"+strconv.Itoa(pushes)+"-", int64(1)
						if mode == "update" {
							prefix, version = "warm-up-", int64(pushes+1)
						}
						for _, res := range push(b, target, batch(prefix, version)...) {
							if res.Err != nil {
								b.Fatal(res.Err)
							}
						}
					}
					b.ReportMetric(float64(pushes*batchSize)/b.Elapsed().Seconds(), "rows/s")
				})
			}
		})
	}
}
