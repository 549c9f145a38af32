// Package window is a recurring time window of the week: days, a start
// and an end in local wall-clock time ("HH:MM"), and an IANA time zone.
// Conditional target layers use it (fleet, runtime/layer), and so may
// anything else a device decides by its own clock (maintenance windows).
//
// A window opens on each of its days at From and closes at To the same
// day, or the next day when To is not after From (a night window, 22:00
// to 06:00, that opened on Monday closes on Tuesday). Days name the days
// a window opens, so that night window is open early on Tuesday because
// it opened on Monday. From equal to To is a whole day (24 hours from
// From). Times are wall-clock times in the window's zone, so a window
// follows daylight saving time: 08:00 is 08:00 in summer and in winter,
// and a day when clocks move is 23 or 25 hours long. A wall-clock time
// that a change skips (02:30 on the spring day in Europe/Berlin) is taken
// the way Go's time.Date takes it.
//
// The zone comes from the system's zoneinfo (time.LoadLocation). Boards
// whose image has none get it from the copy ternd embeds (time/tzdata).
package window
