"""enforcer"""
