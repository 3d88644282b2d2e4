package entity

import "github.com/santhosh-tekuri/jsonschema/v6"

// validateGTIN is the "gtin" format: the last digit of an EAN/GTIN of 8, 12,
// 13 or 14 digits is its check digit (GS1's mod-10: from the right, the
// digits before it weigh 3, 1, 3, ...). Length and digits are the schema's
// pattern's business; this checks only the check digit, so a value that is
// not all digits is left to the pattern's message.
func validateGTIN(v any) error {
	s, ok := v.(string)
	if !ok || s == "" {
		return nil
	}
	sum := 0
	for i := len(s) - 2; i >= 0; i-- {
		d := int(s[i]) - '0'
		if d < 0 || d > 9 {
			return nil
		}
		if (len(s)-2-i)%2 == 0 {
			d *= 3
		}
		sum += d
	}
	last := int(s[len(s)-1]) - '0'
	if last < 0 || last > 9 {
		return nil
	}
	if want := (10 - sum%10) % 10; last != want {
		return jsonschema.LocalizableError("the check digit should be %d", want)
	}
	return nil
}
