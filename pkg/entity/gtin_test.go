package entity

import "testing"

func TestValidateGTIN(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" for accepted
	}{
		{"4006381333931", ""},  // EAN-13
		{"4012345678901", ""},  // EAN-13
		{"96385074", ""},       // EAN-8
		{"036000291452", ""},   // UPC-A (GTIN-12)
		{"10614141000415", ""}, // GTIN-14
		{"00000000", ""},       // all zeros: check digit 0
		{"4006381333932", "the check digit should be 1"},  // wrong check digit
		{"96385075", "the check digit should be 4"},       // EAN-8, wrong check digit
		{"10614141000416", "the check digit should be 5"}, // GTIN-14, wrong
		{"12A4", ""}, // not digits: the pattern's business
		{"", ""},
	}
	for _, tt := range tests {
		err := validateGTIN(tt.in)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("validateGTIN(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if err := validateGTIN(42); err != nil {
		t.Errorf("validateGTIN(42) = %v: a number is the type check's business", err)
	}
}
