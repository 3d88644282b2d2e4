package envelope

// CheckRecord's two paths, for the tests in envelope_test that hold them
// together.
var (
	ValidRecord     = validRecord
	CheckRecordSlow = checkRecordSlow
)
