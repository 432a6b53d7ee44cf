// emulator stand-in for the CUDA header of this name
#pragma once
#include "../emu.h"
