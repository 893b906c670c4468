package nvml

import (
	"fmt"
	"math/bits"
)

// clockReason names one bit of NVML's clocks event (formerly "throttle")
// reasons bit mask.
type clockReason struct {
	bit  uint64
	name string
}

// clockReasons lists the documented bits in ascending order. The values are
// identical for nvmlDeviceGetCurrentClocksEventReasons and the deprecated
// nvmlDeviceGetCurrentClocksThrottleReasons.
var clockReasons = [...]clockReason{
	{0x001, "gpu_idle"},
	{0x002, "applications_clocks_setting"},
	{0x004, "sw_power_cap"},
	{0x008, "hw_slowdown"},
	{0x010, "sync_boost"},
	{0x020, "sw_thermal_slowdown"},
	{0x040, "hw_thermal_slowdown"},
	{0x080, "hw_power_brake_slowdown"},
	{0x100, "display_clock_setting"},
	{0x200, "board_limit"},
	{0x400, "reliability"},
}

// ClockReasonNames decodes an NVML clocks event reasons mask into reason
// names, in bit order. Undocumented bits decode as "unknown_0x<bit>" so they
// are never silently dropped. A zero mask decodes to an empty (nil) slice.
func ClockReasonNames(mask uint64) []string {
	var names []string
	for mask != 0 {
		bit := uint64(1) << bits.TrailingZeros64(mask)
		mask &^= bit
		names = append(names, clockReasonName(bit))
	}
	return names
}

func clockReasonName(bit uint64) string {
	for _, r := range clockReasons {
		if r.bit == bit {
			return r.name
		}
	}
	return fmt.Sprintf("unknown_%#x", bit)
}
