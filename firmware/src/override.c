/* override.c: the override arithmetic, as GRBL 1.1 does it: resets first, then the steps, then the clamp. */
#include "override.h"

#define REQ(byte) (1u << ((byte) - OVR_FIRST_BYTE))
#define OVR_MIN 10
#define OVR_MAX 200

void ovr_reset(overrides_t *o)
{
    o->feed = o->rapid = o->spindle = OVR_DEFAULT;
}

/* reset, +10, -10, +1, -1 at bytes first..first+4 */
static uint8_t stepped(uint8_t value, uint16_t requests, uint8_t first)
{
    int16_t v = value;
    if (requests & REQ(first)) v = OVR_DEFAULT;
    if (requests & REQ(first + 1)) v += 10;
    if (requests & REQ(first + 2)) v -= 10;
    if (requests & REQ(first + 3)) v += 1;
    if (requests & REQ(first + 4)) v -= 1;
    if (v > OVR_MAX) v = OVR_MAX;
    if (v < OVR_MIN) v = OVR_MIN;
    return (uint8_t)v;
}

uint8_t ovr_apply(overrides_t *o, uint16_t requests)
{
    overrides_t before = *o;
    o->feed = stepped(o->feed, requests, 0x90);
    if (requests & REQ(0x95)) o->rapid = 100;
    if (requests & REQ(0x96)) o->rapid = 50;
    if (requests & REQ(0x97)) o->rapid = 25;
    o->spindle = stepped(o->spindle, requests, 0x99);
    return before.feed != o->feed || before.rapid != o->rapid || before.spindle != o->spindle;
}
