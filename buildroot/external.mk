include $(sort $(wildcard $(BR2_EXTERNAL_ROOMBOX_PATH)/package/*/*.mk))
