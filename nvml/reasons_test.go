package nvml

import (
	"slices"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
)

func TestClockReasonNames(t *testing.T) {
	tests := []struct {
		name string
		mask uint64
		want []string
	}{
		{"none", 0, nil},
		{"idle", gonvml.ClocksEventReasonGpuIdle, []string{"gpu_idle"}},
		{"power and thermal", gonvml.ClocksEventReasonSwPowerCap | gonvml.ClocksThrottleReasonHwThermalSlowdown,
			[]string{"sw_power_cap", "hw_thermal_slowdown"}},
		{"legacy throttle bits", gonvml.ClocksThrottleReasonHwSlowdown | gonvml.ClocksThrottleReasonHwPowerBrakeSlowdown,
			[]string{"hw_slowdown", "hw_power_brake_slowdown"}},
		{"all documented", gonvml.ClocksEventReasonAll, []string{
			"gpu_idle", "applications_clocks_setting", "sw_power_cap", "hw_slowdown", "sync_boost",
			"sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown",
			"display_clock_setting", "board_limit", "reliability"}},
		{"unknown bit kept", 1<<40 | 1, []string{"gpu_idle", "unknown_0x10000000000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClockReasonNames(tt.mask); !slices.Equal(got, tt.want) {
				t.Errorf("ClockReasonNames(%#x) = %q, want %q", tt.mask, got, tt.want)
			}
		})
	}
}
