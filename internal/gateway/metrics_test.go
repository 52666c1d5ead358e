package gateway

import (
	"testing"
	"time"
)

func TestMeterRates(t *testing.T) {
	t.Parallel()
	var m meter
	m.add(50) // 10/s over one 5s tick
	m.tick(5 * time.Second)
	it := m.item(5 * time.Second)
	if it.Count != 50 || it.Rate1 != 10 || it.Rate5 != 10 || it.Rate15 != 10 || it.MeanRate != 10 {
		t.Fatalf("after one tick: %v", it)
	}
	m.tick(10 * time.Second) // nothing new: rates decay, maxima stay
	it = m.item(10 * time.Second)
	if !(it.Rate1 < 10 && it.Rate5 > it.Rate1 && it.Rate15 > it.Rate5) {
		t.Errorf("decay: 1m %v 5m %v 15m %v (shorter windows decay faster)", it.Rate1, it.Rate5, it.Rate15)
	}
	if it.Rate1Max != 10 || it.MeanRateMax != 10 || it.MeanRate != 5 {
		t.Errorf("maxima: %v", it)
	}
}
