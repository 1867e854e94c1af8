"""models/landmarks"""
